//! JSON login bodies: fields by JSON pointer, duplicate keys refused.
//!
//! serde_json keeps the last of two equal keys; a shop's parser may keep the
//! first. A body with a repeated key could therefore show credgate one
//! password and the shop another, so any repeated key, at any depth, is an
//! error. Likewise a key that some shop would read as a pointer segment
//! (`User` beside `user`, `paſſword`; see [`crate::fieldname`]) is refused at
//! every level of the pointer, not only at the last.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::{credentials, Credentials, CredentialsError, Field};
use crate::fieldname::{self, NameMatch};
use crate::route::LoginRoute;

const DUPLICATE: &str = "duplicate key";

pub(super) fn extract(body: &[u8], route: &LoginRoute) -> Result<Credentials, CredentialsError> {
    let Strict(mut document) = serde_json::from_slice(body).map_err(|e| {
        match e.is_data() && e.to_string().starts_with(DUPLICATE) {
            true => CredentialsError::DuplicateJsonKey,
            false => CredentialsError::Malformed { format: "JSON" },
        }
    })?;
    let username = string_at(&document, &route.username_field, Field::Username);
    let password = string_at(&document, &route.password_field, Field::Password);
    // A username alias present in any shape: the shop may read it instead.
    let aliased = route.username_aliases.iter().any(|alias| {
        !matches!(
            string_at(&document, alias, Field::Username),
            Err(CredentialsError::Missing { .. })
        )
    });
    scrub(&mut document);
    if aliased {
        return Err(CredentialsError::CaseVariant {
            field: Field::Username,
        });
    }
    credentials(username?, password?)
}

/// Zeroes every string of a parsed body: one of them is a password.
fn scrub(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(object) => object.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The string at `pointer` (`/user/email`; a bare `email` means `/email`).
/// At each step, a key that is a variant of the segment is an error.
fn string_at(
    document: &Value,
    pointer: &str,
    field: Field,
) -> Result<Zeroizing<Vec<u8>>, CredentialsError> {
    let missing = CredentialsError::Missing { field };
    let mut value = document;
    for segment in pointer.trim_start_matches('/').split('/') {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        value = match value {
            Value::Object(object) => {
                let variant = object
                    .keys()
                    .any(|k| fieldname::compare(k.as_bytes(), &segment) == NameMatch::Variant);
                if variant {
                    return Err(CredentialsError::CaseVariant { field });
                }
                object.get(&segment).ok_or(missing)?
            }
            Value::Array(items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .ok_or(missing)?,
            _ => return Err(missing),
        };
    }
    match value {
        Value::String(s) => Ok(Zeroizing::new(s.as_bytes().to_vec())),
        _ => Err(CredentialsError::NotAString { field }),
    }
}

/// A JSON value that fails to deserialize when an object repeats a key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(object))
    }
}
