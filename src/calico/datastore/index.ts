export * from './layout.js';
export * from './block-claim.js';
