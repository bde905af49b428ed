#!/usr/bin/env node
// The `kubectl` of a node container (containers/Dockerfile links it onto the PATH).
import { runKubectl } from './kubectl.js';

process.exitCode = await runKubectl(process.argv.slice(2));
