#!/usr/bin/env node
// The `calicoctl` of a node container (containers/Dockerfile links it onto the PATH).
import { runCalicoctl } from './calicoctl.js';
import { endQuietlyWhenStdoutCloses } from './common.js';

endQuietlyWhenStdoutCloses();
process.exitCode = await runCalicoctl(process.argv.slice(2));
