import { defineConfig } from 'tsup';
import { packageConfig } from '../../scripts/tsup.package.js';

export default defineConfig(packageConfig({ nodeTypes: true }));
