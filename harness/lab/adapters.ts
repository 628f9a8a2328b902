export * from '../adapters/index.js';
