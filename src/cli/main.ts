#!/usr/bin/env -S node --max-semi-space-size=2
// The agent builds its whole node at start (100k routes in a big cluster), and V8 grows its young generation for
// that to ~30 MB, which it gives back only if its memory reducer happens to run; capped, RSS settles where it should.
// A packet's garbage is short-lived, so forwarding does not need more. (`env -S`: GNU coreutils 8.30+, BSD, macOS.)
import { endQuietlyWhenStdoutCloses } from './common.js';
import { runCli } from './program.js';

endQuietlyWhenStdoutCloses();
process.exitCode = await runCli(process.argv.slice(2));
