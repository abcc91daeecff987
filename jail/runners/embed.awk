# Turns a script into the body of a C string literal, one source line per line.
{
	gsub(/\\/, "\\\\");
	gsub(/"/, "\\\"");
	printf "\"%s\\n\"\n", $0;
}
