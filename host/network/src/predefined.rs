//! The predefined networks: "bridge" (the default), "host" and "none".

use std::collections::BTreeMap;

use chrono::Utc;

use crate::error::NetworkError;
use crate::manager::{random_hex, ManagerConfig};
use crate::state::{NetworkRecord, State};
use crate::types::{Driver, DEFAULT_NETWORK, HOST_NETWORK, NONE_NETWORK};
use crate::{ipam, plumbing};

/// Adds "bridge", "host" and "none" to the state if they are missing. The
/// default bridge adopts the address its device already has, if any.
pub(crate) fn ensure(config: &ManagerConfig, state: &mut State) -> Result<(), NetworkError> {
    let predefined = |name: &str, driver: Driver| NetworkRecord {
        id: random_hex(32),
        name: name.to_string(),
        driver,
        subnet: None,
        gateway: None,
        bridge: None,
        created: Utc::now(),
        internal: false,
        labels: BTreeMap::new(),
        last_allocated: None,
        predefined: true,
    };
    if state.network_by_name(DEFAULT_NETWORK).is_none() {
        let (subnet, gateway) = match config.default_subnet {
            Some(subnet) => (subnet.trunc(), ipam::gateway(&subnet.trunc())),
            None => match plumbing::device_address(&config.default_bridge)? {
                Some(existing) => (existing.trunc(), existing.addr()),
                None => {
                    let mut taken = plumbing::host_subnets()?;
                    taken.extend(state.networks.values().filter_map(|n| n.subnet));
                    let subnet =
                        ipam::choose_subnet(&taken).ok_or(NetworkError::NoSubnetAvailable)?;
                    (subnet, ipam::gateway(&subnet))
                }
            },
        };
        if !ipam::usable(&subnet) {
            return Err(NetworkError::InvalidArgument(format!(
                "default subnet {subnet} is too small"
            )));
        }
        let mut record = predefined(DEFAULT_NETWORK, Driver::Bridge);
        record.subnet = Some(subnet);
        record.gateway = Some(gateway);
        record.bridge = Some(config.default_bridge.clone());
        state.networks.insert(record.id.clone(), record);
    }
    if state.network_by_name(HOST_NETWORK).is_none() {
        let record = predefined(HOST_NETWORK, Driver::Host);
        state.networks.insert(record.id.clone(), record);
    }
    if state.network_by_name(NONE_NETWORK).is_none() {
        let record = predefined(NONE_NETWORK, Driver::Null);
        state.networks.insert(record.id.clone(), record);
    }
    Ok(())
}
