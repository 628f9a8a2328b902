export * from './duration.js';
export * from './errors.js';
export * from './events.js';
export * from './handle.js';
export * from './net.js';
export * from './options.js';
export * from './tls-alerts.js';
