import type { ClientLocation } from './ip.js';
import { CONTINENTS, type Continent, type GeoLocationInput } from './options.js';

/** A geolocation of a record (or a latency row), normalised. `{}` is Default (`*`). */
export interface GeoMatch {
  continent?: Continent;
  country?: string;
  subdivision?: string;
}

export function parseGeo(input: GeoLocationInput): GeoMatch {
  if (typeof input !== 'string') {
    return {
      ...(input.continent ? { continent: input.continent } : {}),
      ...(input.country ? { country: input.country } : {}),
      ...(input.subdivision ? { subdivision: input.subdivision } : {}),
    };
  }
  if (input === '*') return {};
  const dash = input.indexOf('-');
  if (dash > 0) return { country: input.slice(0, dash), subdivision: input.slice(dash + 1) };
  if ((CONTINENTS as readonly string[]).includes(input)) return { continent: input as Continent };
  return { country: input };
}

export function geoText(g: GeoMatch): string {
  if (g.subdivision) return `${g.country ?? '?'}-${g.subdivision}`;
  return g.country ?? g.continent ?? '*';
}

/**
 * How specifically `g` matches the client's location (Route 53: subdivision > country > continent >
 * Default): 3, 2, 1, 0 for Default, -1 when it does not match.
 */
export function geoSpecificity(g: GeoMatch, loc: ClientLocation): number {
  if (g.subdivision) return g.country === loc.country && g.subdivision === loc.subdivision ? 3 : -1;
  if (g.country) return g.country === loc.country ? 2 : -1;
  if (g.continent) return g.continent === loc.continent ? 1 : -1;
  return 0;
}

/** The most specific of `items` matching `loc`, or undefined. Ties: the first wins. */
export function bestGeo<T>(
  items: readonly T[],
  geoOf: (t: T) => GeoMatch | undefined,
  loc: ClientLocation,
): T | undefined {
  let best: T | undefined;
  let score = -1;
  for (const it of items) {
    const g = geoOf(it);
    if (!g) continue;
    const s = geoSpecificity(g, loc);
    if (s > score) {
      best = it;
      score = s;
    }
  }
  return best;
}

/** Human text of a client location, e.g. `NA/US/WA` or `unknown`. */
export function locationText(loc: ClientLocation): string {
  if (!loc.continent) return 'unknown';
  return [loc.continent, loc.country, loc.subdivision].filter(Boolean).join('/');
}
