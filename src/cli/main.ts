#!/usr/bin/env node
import { endQuietlyWhenStdoutCloses } from './common.js';
import { runCli } from './program.js';

endQuietlyWhenStdoutCloses();
process.exitCode = await runCli(process.argv.slice(2));
