// sandcell's Node.js runner: reads "<preload length>\n<preload><code>" from
// stdin and runs preload and code as sloppy-mode scripts in the global scope.
// Everything the runner needs is taken before user code runs, inside a
// closure, so user declarations (even of parseInt) cannot change it.
//
// When the process is about to exit (event loop empty, or process.exit()),
// after every 'exit' listener ran, the runner reports "<status>\n" on fd 3:
// sandcell answers without waiting for V8's teardown. stdout and stderr are
// made blocking first, so everything printed before is already in the pipes.
(function () {
	'use strict';
	const fs = require('fs');
	const vm = require('vm');
	const writeSync = fs.writeSync;

	// before reading the code, so that a warm sandbox has done it already:
	// creating process.stdout costs milliseconds
	for (const stream of [process.stdout, process.stderr])
		if (stream._handle && typeof stream._handle.setBlocking === 'function')
			stream._handle.setBlocking(true);

	const data = fs.readFileSync(0);
	const newline = data.indexOf(10);
	const preloadLen = Number(data.subarray(0, newline).toString('latin1'));
	const preload = data.subarray(newline + 1, newline + 1 + preloadLen).toString('utf8');
	const code = data.subarray(newline + 1 + preloadLen).toString('utf8');

	// Node prints an uncaught exception only after 'exit': then the runner
	// stays silent and the real exit is awaited.
	let crashed = false;
	process.on('uncaughtExceptionMonitor', function () {
		crashed = true;
	});
	const emit = process.emit;
	process.emit = function (event, status) {
		const result = emit.apply(this, arguments);
		if (event === 'exit' && !crashed) {
			const final = process.exitCode !== undefined ? process.exitCode : status;
			try {
				writeSync(3, String((final | 0) & 0xff) + '\n');
			} catch (e) {
				// the program closed fd 3: its exit status tells instead
			}
		}
		return result;
	};

	if (preload.length > 0)
		vm.runInThisContext(preload, { filename: 'preload.js' });
	vm.runInThisContext(code, { filename: 'main.js' });
})();
