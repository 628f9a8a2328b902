/**
 * The netns backend's machinery (DESIGN.md, "Network backends"): real hosts as network namespaces on
 * veth pairs and per-segment bridges (in a switch namespace), nftables firewalls, WireGuard via
 * wireguard-go, tc bandwidth. Linux, root or CAP_NET_ADMIN.
 *
 *   const plan = planNetns(topology);          // pure: what would run (no root needed)
 *   const lab = await applyNetns(topology);    // builds it; rolls back on error
 *   await lab.execIn('device', ['curl', ...]);
 *   await lab.teardown();                      // or cleanNetns() after a SIGKILL
 */
export { formatIp, LAB_RANGES, labCidr, parseCidr } from './addresses.js';
export {
  type ApplyOptions,
  applyNetns,
  type FirewallCounter,
  labEnv,
  NetnsLab,
  parseNftCounters,
} from './apply.js';
export { cleanNetns, leftoverEtcNetns, type NetnsCleanReport } from './clean.js';
export type { ExecOptions, ExecResult } from './exec.js';
export { explainPath, explainRoute, type RouteExplanation, type RouteFacts } from './explain.js';
export {
  type FirewallRule,
  type HostConfig,
  type Topology,
  type TopologyInput,
  topologySchema,
} from './model.js';
export { detectNetem, type NetemSupport } from './netem.js';
export {
  describePlan,
  describeStep,
  type NetnsPlan,
  namespaceName,
  type PlanStep,
  planNetns,
  renderNftTable,
  switchNamespace,
} from './plan.js';
export { listRecords, type NetnsRecord, netnsStateDir, recordPath } from './state.js';
