export * from './classes.js';
export * from './curl.js';
export * from './evidence.js';
export * from './https-probe.js';
export * from './node-errors.js';
export * from './phases.js';
