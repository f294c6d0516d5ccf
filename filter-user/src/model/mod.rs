//! What a policy says: countries, regions (subdivisions and networks), named groups, the policy and its file form, port scopes, and
//! the reference judge that says what the kernel must do with a frame.

pub mod cidr_index;
pub mod country;
pub mod groups;
pub mod iface;
pub mod lookup;
pub mod network;
pub mod policy;
pub mod policy_file;
pub mod region;
pub mod scope;
