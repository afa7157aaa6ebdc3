#!/usr/bin/env node
// docker2aci, a drop-in for appc/docker2aci: see src/cli.ts.
import { docker2aciMain } from "../dist/cli.js";

process.exitCode = await docker2aciMain(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  cwd: process.cwd(),
  argv0: process.argv[1],
});
