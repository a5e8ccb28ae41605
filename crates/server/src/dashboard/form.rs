//! Forms shown again after an error: the error goes next to the input it is about, which the
//! service names in `Error::Field` (never guessed from the message).

use axum::http::StatusCode;
use serde::Deserialize;
use yatai_domain::Error;
use yatai_service::users::NewAccount;

use crate::error::ApiError;

/// The error a form is shown again with.
#[derive(Debug, Clone, Default)]
pub struct FormError {
    /// The input it is about: one of the form's field names, or [`FormError::GENERAL`].
    pub field: String,
    pub message: String,
    /// The status of the page (the same the API answers the same request with).
    pub status: StatusCode,
}

impl FormError {
    /// The slot of an error that is about no input of the form.
    pub const GENERAL: &'static str = "";

    /// The error of a form with inputs `fields`, when the service named one of them; any other
    /// error is handed back, to be shown as an error page.
    pub fn of(e: Error, fields: &[&str]) -> Result<FormError, Error> {
        match e.field_name() {
            Some(f) if fields.contains(&f) => Ok(Self::new(f.to_string(), e)),
            _ => Err(e),
        }
    }

    /// An error shown in the form, next to its field when it names one of `fields`, else above
    /// the form's buttons.
    pub fn anywhere(e: Error, fields: &[&str]) -> FormError {
        let field = e
            .field_name()
            .filter(|f| fields.contains(f))
            .unwrap_or(Self::GENERAL)
            .to_string();
        Self::new(field, e)
    }

    fn new(field: String, e: Error) -> FormError {
        let api = ApiError(e);
        FormError {
            field,
            message: api.public_message(),
            status: api.status().0,
        }
    }

    /// Whether the error belongs next to `field` (templates: `error.on("name")`).
    pub fn on(&self, field: &str) -> bool {
        !self.message.is_empty() && self.field == field
    }
}

/// One input of a form, with its error.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub autocomplete: &'static str,
    pub error: String,
}

/// The names of the inputs of [`PersonForm`].
pub const PERSON_FIELDS: [&str; 5] = ["name", "email", "password", "first_name", "last_name"];

/// The inputs of a new account, as the setup and the new-user forms send them.
#[derive(Debug, Deserialize)]
pub struct PersonForm {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
}

impl PersonForm {
    /// The account the form asks for.
    pub fn account(&self) -> NewAccount {
        NewAccount {
            name: self.name.clone(),
            email: self.email.clone(),
            password: self.password.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
        }
    }

    /// The form's inputs again, with what was typed (but the password) and the error.
    pub fn fields(&self, error: &FormError) -> Vec<Field> {
        let values = [
            ("name", self.name.as_str()),
            ("email", &self.email),
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
        ];
        person_fields(&values, Some(error))
    }
}

/// The inputs of a new account (setup, new user), filled with `values` (never the password) and
/// the error next to its field.
pub fn person_fields(values: &[(&str, &str)], error: Option<&FormError>) -> Vec<Field> {
    let inputs = [
        ("name", "User name", "text", true, "username"),
        ("email", "E-mail", "email", true, "email"),
        (
            "password",
            "Password (8 characters or more)",
            "password",
            true,
            "new-password",
        ),
        ("first_name", "First name", "text", false, "given-name"),
        ("last_name", "Last name", "text", false, "family-name"),
    ];
    inputs
        .into_iter()
        .map(|(name, label, kind, required, autocomplete)| Field {
            name,
            label,
            kind,
            value: match kind {
                "password" => String::new(),
                _ => values
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default(),
            },
            required,
            autocomplete,
            error: error
                .filter(|e| e.on(name))
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_go_where_the_service_says() {
        let e = Error::field("email", Error::invalid("the password is not an e-mail"));
        let f = FormError::of(e, &PERSON_FIELDS).unwrap();
        assert!(f.on("email") && !f.on("password"));
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
        let fields = person_fields(&[("email", "x"), ("password", "secret")], Some(&f));
        let email = fields.iter().find(|f| f.name == "email").unwrap();
        assert_eq!(email.value, "x");
        assert_eq!(email.error, "the password is not an e-mail");
        let password = fields.iter().find(|f| f.name == "password").unwrap();
        assert!(password.value.is_empty() && password.error.is_empty());

        let forbidden = FormError::of(Error::Forbidden("no".into()), &PERSON_FIELDS);
        assert!(matches!(forbidden, Err(Error::Forbidden(_))));
        let other = FormError::anywhere(Error::Conflict("keep an admin".into()), &["username"]);
        assert!(other.on(FormError::GENERAL));
        assert_eq!(other.status, StatusCode::CONFLICT);
    }
}
