#!/usr/bin/env node
// The `birdcl` of a node container (containers/Dockerfile links it onto the PATH).
import { runBirdcl } from './birdcl.js';
import { endQuietlyWhenStdoutCloses } from './common.js';

endQuietlyWhenStdoutCloses();
process.exitCode = await runBirdcl(process.argv.slice(2));
