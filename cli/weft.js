#!/usr/bin/env node
// The `weft` command: TypeScript sources run through tsx's loader, so no build step is needed.
import { register } from 'tsx/esm/api';

register();
const { mainThenExit } = await import('./main.ts');
mainThenExit();
