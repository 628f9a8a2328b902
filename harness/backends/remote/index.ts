/**
 * Simulators in other processes (a container, a network namespace): the worker's control protocol, its
 * two transports, the lab's side of a relay it runs, and the worker process itself.
 */
export { type RemoteDnsFaults, remoteDnsFaults } from './dns-faults.js';
export { type HttpControlTarget, httpControlChannel } from './http-channel.js';
export {
  CONTROL_PATH,
  CONTROL_PORT,
  type ControlChannel,
  type ControlReply,
  type ControlRequest,
  type RelayStats,
} from './protocol.js';
export { type FaultTracker, type RemoteRelay, remoteRelay } from './relay.js';
export { type WorkerReady, type WorkerSpec, workerReadySchema, workerSpecSchema } from './spec.js';
export { StdioControlChannel } from './stdio-channel.js';
export { type StartWorkerOptions, startWorkerProcess, type WorkerSimulator } from './worker-process.js';
