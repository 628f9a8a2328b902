import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { listen } from '../../../simulators/common/net.js';
import type { PublicBinder } from '../../lab/in-process.js';

/**
 * Public sockets for a simulator whose process already runs where its clients are (a worker in its
 * host's network namespace): bound here, on the host's own address, at the port the scenario gives
 * (a DNS server on 53, which resolv.conf cannot change). In the fieldlab process the netns backend binds
 * them inside the namespace and hands them over (`NetnsLab.bindIn`); here no hand-over is needed.
 */
export function localBinder(address: string): PublicBinder {
  return {
    async bindPublic(port = 0): Promise<object> {
      const server = createServer();
      await listen(server, address, port);
      // A listening server is a handle `server.listen(handle)` takes over (Node's net docs).
      return server;
    },
    bindPublicUdp(port: number): Promise<UdpSocket> {
      const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
      return new Promise((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(port, address, () => {
          socket.off('error', reject);
          resolve(socket);
        });
      });
    },
  };
}
