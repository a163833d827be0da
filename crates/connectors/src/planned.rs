//! Types the catalog lists as disabled ("coming soon") until their connector
//! works end to end. Each carries the properties it will take, so the wizard
//! can show them; when a connector is built it moves to a folder of its own.
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P};
use switchyard_core::{Direction, ResourceType};

use crate::{Category, ConnectorType, DirectionSupport};

fn planned(
    key: &'static str,
    name: &'static str,
    description: &'static str,
    directions: Vec<(Direction, Vec<P>)>,
) -> ConnectorType {
    ConnectorType {
        key: key.into(),
        name: name.into(),
        description: description.into(),
        category: Category::Standard,
        directions: directions
            .into_iter()
            .map(|(direction, properties)| DirectionSupport::planned(direction, properties))
            .collect(),
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}

pub(crate) fn types() -> Vec<ConnectorType> {
    use Direction::{Egress, Ingress};
    let mut types = vec![planned(
        "UTILITY_DATA",
        "Utility data",
        "Meter and billing data from a utility.",
        vec![(
            Ingress,
            vec![
                P::new("provider", "Provider", K::String).required(),
                P::new("apiKey", "API key", K::Secret).required(),
                P::new("place", "Place", K::Resource).resource(ResourceType::Place).required(),
            ],
        )],
    )];
    types.push(ConnectorType {
        key: "LUA_SCRIPT".into(),
        name: "Scripted integration".into(),
        description: "A custom integration built from a manifest and Lua handlers.".into(),
        category: Category::Custom,
        directions: vec![DirectionSupport::planned(Ingress, vec![]), DirectionSupport::planned(Egress, vec![])],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    });
    types
}
