export { Ipv4Address, Ipv4Prefix, maskOf } from './address.js';
export type { Link, LinkAddress, LinkAddress6 } from './link.js';
export { LpmTable } from './lpm.js';
export { renderIpAddr, renderIpRoute, renderRoute } from './render.js';
export type { IpAddrOptions, RouteRenderOptions } from './render.js';
export type {
  BlackholeNextHop,
  BlackholeRoute,
  NextHop,
  Route,
  RouteJson,
  RouteProtocol,
  RouteScope,
  UnicastNextHop,
  UnicastRoute,
} from './route.js';
export { routeFromJson } from './route.js';
export { compareRoutesInKernelOrder, RouteTable } from './table.js';
