/** The node's two devices besides the pods' cali veths, named as Calico's nodes name them. */
export const UNDERLAY_INTERFACE = 'eth0';
export const TUNNEL_INTERFACE = 'tunl0';
