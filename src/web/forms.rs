//! Form errors in plain words, next to the field they are about. A handler that refuses a form
//! renders the same page again with the values typed and a [`FormErrors`]; the macros of
//! `templates/web/forms.html` show each message under its label, tie it to the input with
//! `aria-describedby` and `aria-invalid`, and the page lists them all in a summary at the top
//! whose links move the focus to each field.

/// The problems with one submitted form.
#[derive(Debug, Clone, Default)]
pub struct FormErrors {
    fields: Vec<(String, String)>,
}

// === impl FormErrors ===

impl FormErrors {
    /// No errors.
    pub fn new() -> FormErrors {
        FormErrors::default()
    }

    /// Errors as `(field name, problem)` pairs (the services' own shape).
    pub fn from_pairs(fields: Vec<(String, String)>) -> FormErrors {
        FormErrors { fields }
    }

    /// Adds a problem with field `name` (the input's `name`).
    pub fn add(&mut self, name: impl Into<String>, problem: impl Into<String>) {
        self.fields.push((name.into(), problem.into()));
    }

    /// Whether the form had no problem.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The first problem with field `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, p)| p.as_str())
    }

    /// Every problem, in the order found (the summary).
    pub fn all(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The `id` of the input named `name`: `f-` and the name with anything but letters and
    /// digits turned into `-` (names like `owners[0].legal_name` are not convenient ids).
    pub fn id(&self, name: &str) -> String {
        field_id(name)
    }
}

/// See [`FormErrors::id`].
pub fn field_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len() + 2);
    id.push_str("f-");
    id.extend(
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }),
    );
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_found_by_field_and_ids_are_plain() {
        let mut e = FormErrors::new();
        assert!(e.is_empty());
        e.add("email", "is not a valid address");
        e.add("owners[0].legal_name", "required");
        e.add("email", "second problem");
        assert_eq!(e.get("email"), Some("is not a valid address"));
        assert_eq!(e.get("password"), None);
        assert_eq!(e.all().len(), 3);
        assert_eq!(e.id("owners[0].legal_name"), "f-owners-0--legal-name");
    }
}
