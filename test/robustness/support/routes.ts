/**
 * The control API's route table, read from the source (`'METHOD /v1/…'` keys in src/node), and where the CLI and
 * the harness use each route: issue 7 wants the API to change nothing but what the CLI needs, so every route that
 * is not a GET must be one that src/cli or src/testing calls.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../support/cli.js';

export interface ApiRoute {
  method: string;
  /** `/v1/taps/*` for a route with a parameter. */
  path: string;
  file: string;
}

function sources(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/** A route key as the API's table writes it: `'POST /v1/inject'`, `'DELETE /v1/captures/*'`, quotes included. */
const ROUTE_KEY = /['"`](GET|POST|PUT|PATCH|DELETE) (\/v1\/[A-Za-z0-9_/*-]*)['"`]/g;

/** Every `'METHOD /v1/…'` string in src/node, once each: the API's route keys. */
export function apiRoutes(): ApiRoute[] {
  const routes = new Map<string, ApiRoute>();
  for (const file of sources(path.join(REPO_ROOT, 'src/node'))) {
    for (const match of readFileSync(file, 'utf8').matchAll(ROUTE_KEY)) {
      const key = `${match[1]} ${match[2]}`;
      if (!routes.has(key)) routes.set(key, { method: match[1], path: match[2], file: path.relative(REPO_ROOT, file) });
    }
  }
  return [...routes.values()];
}

/** Files of src/cli and src/testing that name `routePath` (its part before a `*` parameter). */
export function callersOf(routePath: string): string[] {
  const fixed = routePath.replace(/\/\*$/, '/');
  // A path as a string of its own, or as the contract's endpoint key (`'POST /v1/ping'`).
  const named = new RegExp(`['\`](?:[A-Z]+ )?${fixed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
  return [...sources(path.join(REPO_ROOT, 'src/cli')), ...sources(path.join(REPO_ROOT, 'src/testing'))]
    .filter((file) => named.test(readFileSync(file, 'utf8')))
    .map((file) => path.relative(REPO_ROOT, file));
}

/** Paths that only answer GET: writing to them must be refused. */
export function readOnlyPaths(routes: readonly ApiRoute[]): string[] {
  const paths = [...new Set(routes.map((route) => route.path))].filter((p) => !p.includes('*'));
  return paths.filter((p) => routes.every((route) => route.path !== p || route.method === 'GET'));
}
