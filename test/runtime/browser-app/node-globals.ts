// pg uses Node's Buffer and process as globals: the bundler injects these where it does.
import { Buffer } from 'buffer';
import process from 'process/browser.js';

export { Buffer, process };
