import { execFileSync } from 'node:child_process';

/**
 * Hosts on one machine (DESIGN §12): one Linux network namespace per host, each with its own address on a private
 * /24 and a veth pair into a switch namespace that holds the bridge. Nothing is added to the machine's own namespace,
 * so traffic stays between these namespaces; removing them removes every link and address with them.
 *
 * A host's link can be cut (its switch port goes down: its packets are dropped both ways, its sockets stay open, as
 * when a cable is pulled) and mended, or made slow (a token-bucket filter on both ends of its veth pair: everything
 * it sends and receives queues behind a bandwidth limit). The kernels of these machines have no netem, so a slow link
 * is a narrow one, not one with a fixed added latency.
 */

const SUBNET = '10.77.0';

export interface Namespaces {
  /** The address of a host by its name. */
  address(host: string): string;
  /** The namespace a host's processes run in (`ip netns exec NAME …`). */
  namespace(host: string): string;
  /** Drops every packet to and from the host until `mend`. */
  cut(host: string): void;
  mend(host: string): void;
  /** Limits the host's link to `kbit` kilobits a second both ways, until `unslow`. */
  slow(host: string, kbit: number): void;
  unslow(host: string): void;
  /** Removes every namespace, with its links and addresses. */
  remove(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
const tc = (...args: string[]) => execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Why namespaces cannot be made here, or null when they can (root and a working `ip netns`). */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `ailprobe${process.pid}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return null;
  } catch (err) {
    return `ip netns add failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message}`;
  }
}

/** Namespaces `<prefix>-<host>` for each host, addressed 10.77.0.1, .2, … in order, plus the switch. */
export function createNamespaces(prefix: string, hosts: readonly string[]): Namespaces {
  const sw = `${prefix}-sw`;
  const made: string[] = [];
  const index = new Map(hosts.map((h, i) => [h, i]));
  const indexOf = (host: string) => {
    const i = index.get(host);
    if (i === undefined) throw new Error(`no host ${host} among ${hosts.join(', ')}`);
    return i;
  };
  const remove = () => {
    for (const ns of made.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {}
    }
    made.length = 0;
  };
  try {
    ip('netns', 'add', sw);
    made.push(sw);
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
    for (const [i, host] of hosts.entries()) {
      const ns = `${prefix}-${host}`;
      ip('netns', 'add', ns);
      made.push(ns);
      // Created inside the host's namespace, then one end moved to the switch: nothing touches the root namespace.
      ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`);
      ip('-n', ns, 'link', 'set', `p${i}`, 'netns', sw);
      ip('-n', sw, 'link', 'set', `p${i}`, 'master', 'br0');
      ip('-n', sw, 'link', 'set', `p${i}`, 'up');
      ip('-n', ns, 'addr', 'add', `${SUBNET}.${i + 1}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
  } catch (err) {
    remove();
    throw err;
  }
  // Both ends of the pair: a qdisc shapes only what leaves its interface.
  const ends = (host: string) =>
    [
      [`${prefix}-${host}`, 'eth0'],
      [sw, `p${indexOf(host)}`],
    ] as const;
  return {
    address: (host) => `${SUBNET}.${indexOf(host) + 1}`,
    namespace: (host) => `${prefix}-${hosts[indexOf(host)]}`,
    cut: (host) => ip('-n', sw, 'link', 'set', `p${indexOf(host)}`, 'down'),
    mend: (host) => ip('-n', sw, 'link', 'set', `p${indexOf(host)}`, 'up'),
    slow(host, kbit) {
      // A burst of 32 kbit and at most 2 s in the queue: more is dropped, as on a congested link.
      for (const [ns, dev] of ends(host))
        tc(
          '-n',
          ns,
          'qdisc',
          'replace',
          'dev',
          dev,
          'root',
          'tbf',
          'rate',
          `${kbit}kbit`,
          'burst',
          '32kbit',
          'latency',
          '2s',
        );
    },
    unslow(host) {
      for (const [ns, dev] of ends(host)) tc('-n', ns, 'qdisc', 'del', 'dev', dev, 'root');
    },
    remove,
  };
}
