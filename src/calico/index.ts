export * from './spec.js';
export * from './ipam.js';
export * from './naming.js';
export * from './scheduler.js';
export * from './cluster.js';
export * from './felix.js';
export * from './spec-workloads.js';
export * from './generate-spec.js';
