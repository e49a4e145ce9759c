/// The Common Name of a verified client certificate; with auth enabled it names the user, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCommonName(pub String);
