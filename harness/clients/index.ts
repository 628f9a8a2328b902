export * from './command.js';
export * from './node-fn.js';
