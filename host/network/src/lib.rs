//! Container networking for native mode: bridges, veth, IPAM, NAT, published ports.
