import { describe, expect, it } from 'vitest';
import { matchRoutes, parseRoute, parseRoutes } from '../../simulators/iot-hub/routes.js';

/** edgeHub route syntax as the deployment manifests write it (Learn, "deploy modules and establish routes"). */
const routes = parseRoutes(
  {
    all: 'FROM /messages/* INTO $upstream',
    sensorAny: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/a/inputs/any")',
    sensorOutputs: 'FROM /messages/modules/sensor/outputs/* INTO BrokeredEndpoint("/modules/a/inputs/outs")',
    sensorTemp: {
      route: 'FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint("/modules/a/inputs/t")',
      priority: 2,
      timeToLiveSecs: 30,
    },
  },
  'routes',
);
const names = (module: string, output: string | undefined) =>
  matchRoutes(routes, module, output).map((r) => r.name);

describe('iot-hub edge routes', () => {
  it('a module/* source takes messages on any output or none; outputs/* only those on an output', () => {
    expect(names('sensor', undefined)).toEqual(['all', 'sensorAny']);
    expect(names('sensor', 'temperature')).toEqual(['all', 'sensorAny', 'sensorOutputs', 'sensorTemp']);
    expect(names('sensor', 'humidity')).toEqual(['all', 'sensorAny', 'sensorOutputs']);
    expect(names('other', 'temperature')).toEqual(['all']);
  });

  it('reads sinks, priority and time-to-live (edgeHub defaults: priority 0, 7200 s); keywords in any case', () => {
    expect(routes.find((r) => r.name === 'sensorTemp')).toMatchObject({
      sink: { module: 'a', input: 't' },
      priority: 2,
      timeToLiveSecs: 30,
    });
    expect(parseRoute('x', 'from /* into $upstream', 'r')).toMatchObject({
      from: { module: '*' },
      sink: { upstream: true },
      priority: 0,
      timeToLiveSecs: 7200,
    });
  });

  it('refuses a route it would have to take only in part, with the route named in the error', () => {
    const refused = (text: string) => () => parseRoute('r1', text, 'devices[0].routes.r1');
    expect(refused('FROM /messages/* WHERE $connectionDeviceId = "x" INTO $upstream')).toThrow(
      /devices\[0\]\.routes\.r1.*WHERE conditions are not modelled/,
    );
    expect(refused('FROM /twinChangeNotifications INTO $upstream')).toThrow(/not one edgeHub routes/);
    expect(refused('FROM /messages/* INTO BrokeredEndpoint("/modules/a/outputs/x")')).toThrow(/sink/);
    expect(refused('FROM /messages/* INTO BrokeredEndpoint("/modules/a/inputs/in#1")')).toThrow(/sink/);
    expect(refused('/messages/* to $upstream')).toThrow(expect.objectContaining({ code: 'E_BAD_OPTION' }));
  });
});
