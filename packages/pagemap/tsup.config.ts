import { defineConfig } from 'tsup';
import { packageConfig } from '../../scripts/tsup.package.js';

/* the page and its script are not bundled: they ship as they are, in static/ (see "files") */
export default defineConfig(packageConfig({ nodeTypes: false }));
