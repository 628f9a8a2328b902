import { FieldlabError } from '../common/errors.js';

/**
 * IoT Edge routes, as edgeHub reads them from its desired properties (`$edgeHub.properties.desired.routes`;
 * Microsoft Learn, "Learn how to deploy modules and establish routes in IoT Edge"):
 *
 *   FROM <source> [WHERE <condition>] INTO <sink>
 *
 *   source  /*  |  /messages/*  |  /messages/modules/*  |  /messages/modules/<m>/*
 *           |  /messages/modules/<m>/outputs/*  |  /messages/modules/<m>/outputs/<output>
 *   sink    $upstream  |  BrokeredEndpoint("/modules/<m>/inputs/<input>")
 *
 * A module's message is the one it sends on an output (`sendOutputEvent`: MQTT `$.on=<output>`, AMQP
 * `iothub-outputname`) or on none (`sendEvent`). Every matching route delivers a copy; a message that no
 * route matches goes nowhere, as edgeHub drops it. WHERE conditions and `/twinChangeNotifications` are not
 * modelled: a route that has one is refused rather than taken without it.
 */

/** Where a route takes a message. */
export type RouteSink = { upstream: true } | { module: string; input: string };

export interface Route {
  name: string;
  /** 0 (first) to 9: waiting messages of a higher priority go first (default 0, the highest). */
  priority: number;
  /** How long a message waits for its module before it is dropped (edgeHub's default 7200 s). */
  timeToLiveSecs: number;
  /** The sending module (`*` any), and the output (`*` any output, undefined any output or none). */
  from: { module: string; output?: string };
  sink: RouteSink;
}

/** A route as the manifest has it: the string, or (schema 1.1) `{ route, priority, timeToLiveSecs }`. */
export type RouteSpec = string | { route: string; priority?: number; timeToLiveSecs?: number };

/** edgeHub's `storeAndForwardConfiguration.timeToLiveSecs` default. */
const DEFAULT_TTL_SECS = 7200;

const ROUTE = /^\s*FROM\s+(\S+)\s+(?:WHERE\s+(.+?)\s+)?INTO\s+(.+?)\s*;?\s*$/is;
const SOURCE = /^\/messages\/modules\/([^/*]+)(?:\/outputs\/([^/]+)|\/\*)$/;
const BROKERED = /^BrokeredEndpoint\(\s*"\/modules\/([^/"]+)\/inputs\/([^/"#+\s]+)"\s*\)$/i;

function bad(where: string, text: string, why: string, hint: string): FieldlabError {
  return new FieldlabError('E_BAD_OPTION', `iot-hub: ${where}: ${JSON.stringify(text)}: ${why}`, {
    where,
    hint,
  });
}

/** Parses one route; throws E_BAD_OPTION naming the route and what is wrong with it. */
export function parseRoute(name: string, spec: RouteSpec, where: string): Route {
  const text = typeof spec === 'string' ? spec : spec.route;
  const m = ROUTE.exec(text);
  if (!m) {
    throw bad(
      where,
      text,
      'not a route',
      'write it as FROM <source> INTO <sink>, as in the deployment manifest',
    );
  }
  const [, source = '', condition, sinkText = ''] = m;
  if (condition !== undefined) {
    throw bad(
      where,
      text,
      'WHERE conditions are not modelled',
      'drop the WHERE clause, or route the messages the condition would pick from their own output',
    );
  }
  let from: Route['from'];
  if (source === '/*' || source === '/messages/*' || source === '/messages/modules/*') from = { module: '*' };
  else {
    const s = SOURCE.exec(source);
    if (!s) {
      throw bad(
        where,
        text,
        `source ${source} is not one edgeHub routes (twin change notifications are not modelled)`,
        'use /messages/*, /messages/modules/<module>/* or /messages/modules/<module>/outputs/<output|*>',
      );
    }
    from = s[2] === undefined ? { module: s[1]! } : { module: s[1]!, output: s[2] };
  }
  let sink: RouteSink;
  if (sinkText === '$upstream') sink = { upstream: true };
  else {
    const b = BROKERED.exec(sinkText);
    if (!b) {
      throw bad(
        where,
        text,
        `sink ${sinkText} is not $upstream or BrokeredEndpoint("/modules/<module>/inputs/<input>")`,
        'route to $upstream (IoT Hub) or to a module input',
      );
    }
    sink = { module: b[1]!, input: b[2]! };
  }
  const extra: { priority?: number; timeToLiveSecs?: number } = typeof spec === 'string' ? {} : spec;
  return {
    name,
    from,
    sink,
    priority: extra.priority ?? 0,
    timeToLiveSecs: extra.timeToLiveSecs ?? DEFAULT_TTL_SECS,
  };
}

/** Parses a manifest's `routes` map. */
export function parseRoutes(routes: Record<string, RouteSpec>, where: string): Route[] {
  return Object.entries(routes).map(([name, spec]) => parseRoute(name, spec, `${where}.${name}`));
}

/** The routes a message from `module` on `output` (undefined: sent on no output) takes. */
export function matchRoutes(routes: readonly Route[], module: string, output: string | undefined): Route[] {
  return routes.filter((r) => {
    if (r.from.module !== '*' && r.from.module !== module) return false;
    if (r.from.output === undefined) return true;
    return output !== undefined && (r.from.output === '*' || r.from.output === output);
  });
}

/** The sink as the manifest writes it, for events and reports. */
export function sinkText(sink: RouteSink): string {
  return 'upstream' in sink
    ? '$upstream'
    : `BrokeredEndpoint("/modules/${sink.module}/inputs/${sink.input}")`;
}
