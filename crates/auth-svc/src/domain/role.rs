//! Roles: names that travel in every access token.

/// Role of every new account.
pub const ROLE_USER: &str = "user";
/// The role that may call SetUserRole.
pub const ROLE_ADMIN: &str = "admin";

/// Longest role name; roles travel in every access token.
pub const MAX_ROLE_CHARS: usize = 32;

/// Role names: a lowercase ASCII letter, then up to 31 of a-z 0-9 _ -.
pub fn check_role_name(role: &str) -> Result<(), String> {
    let mut chars = role.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_allowed = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !starts_with_letter || !rest_allowed || role.len() > MAX_ROLE_CHARS {
        return Err(format!("role names are 1..={MAX_ROLE_CHARS} characters: a-z first, then a-z 0-9 _ -"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_short_lowercase_words() {
        for good in ["user", "admin", "billing-reader", "a", "r2_d2"] {
            assert!(check_role_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Admin", "1st", "ad min", "admin\n", "rôle", &"r".repeat(33)] {
            assert!(check_role_name(bad).is_err(), "{bad:?}");
        }
    }
}
