// sandcell's Node.js runner: reads "<preload length>\n<preload><code>" from
// stdin and runs preload and code as sloppy-mode scripts in the global scope.
// Everything the runner needs is taken before user code runs, inside a
// closure, so user declarations (even of parseInt) cannot change it.
(function () {
	'use strict';
	const fs = require('fs');
	const vm = require('vm');
	const data = fs.readFileSync(0);
	const newline = data.indexOf(10);
	const preloadLen = Number(data.subarray(0, newline).toString('latin1'));
	const preload = data.subarray(newline + 1, newline + 1 + preloadLen).toString('utf8');
	const code = data.subarray(newline + 1 + preloadLen).toString('utf8');
	if (preload.length > 0)
		vm.runInThisContext(preload, { filename: 'preload.js' });
	vm.runInThisContext(code, { filename: 'main.js' });
})();
