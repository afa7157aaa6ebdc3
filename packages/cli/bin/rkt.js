#!/usr/bin/env node
// The bundled CLI through its code cache when built, else the tsc output (src/start.ts).
import("../dist/start.js").then((m) => m.start());
