//! `preset = "..."` in a `[[login]]` table: how a known platform's login
//! form is posted and how the platform answers a wrong password, so that an
//! operator need not read its source. Each value below was taken from the
//! platform's own code; docs/presets.md names the file for each.

use serde::Deserialize;

/// A platform whose login credgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Wordpress,
    Woocommerce,
    Magento2,
    Shopware6,
    /// Shopware 6's Store API (headless fronts and apps): JSON.
    Shopware6StoreApi,
    Prestashop,
    Django,
    Keycloak,
}

/// The `[[login]]` keys a preset fills; a key the operator sets wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetLogin {
    /// `None` where the platform has no fixed path (Keycloak's names the
    /// realm): the operator must set `path`.
    pub path: Option<&'static str>,
    pub json: bool,
    pub username_field: &'static str,
    pub password_field: &'static str,
    pub failure_status: &'static [u16],
    pub failure_redirect: Option<&'static str>,
    /// The form field without which the platform logs no one in.
    pub attempt_field: Option<&'static str>,
    /// Names the platform reads the username from before `username_field`.
    pub username_aliases: &'static [&'static str],
    /// Whether the paths below `path` reach the same login.
    pub match_subpaths: bool,
}

/// A form platform that answers a wrong password by rendering its login
/// page again (200) and a right one with a redirect: every preset but
/// Magento's and the Store API's.
const fn form_again(
    path: Option<&'static str>,
    user: &'static str,
    pass: &'static str,
    attempt_field: Option<&'static str>,
) -> PresetLogin {
    PresetLogin {
        path,
        json: false,
        username_field: user,
        password_field: pass,
        failure_status: &[200],
        failure_redirect: None,
        attempt_field,
        username_aliases: &[],
        match_subpaths: false,
    }
}

impl Preset {
    pub const ALL: [Preset; 8] = [
        Self::Wordpress,
        Self::Woocommerce,
        Self::Magento2,
        Self::Shopware6,
        Self::Shopware6StoreApi,
        Self::Prestashop,
        Self::Django,
        Self::Keycloak,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wordpress => "wordpress",
            Self::Woocommerce => "woocommerce",
            Self::Magento2 => "magento2",
            Self::Shopware6 => "shopware6",
            Self::Shopware6StoreApi => "shopware6_store_api",
            Self::Prestashop => "prestashop",
            Self::Django => "django",
            Self::Keycloak => "keycloak",
        }
    }

    pub fn login(self) -> PresetLogin {
        match self {
            // wp-login.php: wp_signon() failing falls through to
            // login_header() and the form again; success is
            // wp_safe_redirect() with the wordpress_logged_in_ cookie. Its
            // other actions (lost password, register, a protected post's
            // password) post there too, without `pwd`.
            Self::Wordpress => form_again(Some("/wp-login.php"), "log", "pwd", Some("pwd")),
            // WC_Form_Handler::process_login on the My Account page: a
            // failure adds a notice and the page renders (200); a success
            // redirects.
            // It logs in only a body with `login` (the button); the
            // registration form posts to the same page.
            Self::Woocommerce => {
                form_again(Some("/my-account"), "username", "password", Some("login"))
            }
            // LoginPost redirects either way: a failure back to the login
            // page (AccountRedirect: customer/account/login), a success to
            // the dashboard or the referer.
            Self::Magento2 => PresetLogin {
                path: Some("/customer/account/loginPost"),
                json: false,
                username_field: "login[username]",
                password_field: "login[password]",
                failure_status: &[],
                failure_redirect: Some("/customer/account/login"),
                attempt_field: None,
                username_aliases: &[],
                // Its router reads the segments after the action as
                // parameters: the form posts to
                // loginPost/referer/BASE64/ when the login page had one.
                match_subpaths: true,
            },
            // AuthController::login: a failure is forwarded to the login
            // page (200); a success is createActionResponse(), a redirect.
            // LoginRoute reads `email` before `username`: a body with both
            // would show credgate one user and Shopware another.
            Self::Shopware6 => PresetLogin {
                username_aliases: &["email"],
                ..form_again(Some("/account/login"), "username", "password", None)
            },
            // LoginRoute: 401 CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS, or 200
            // with the new context token.
            Self::Shopware6StoreApi => PresetLogin {
                path: Some("/store-api/account/login"),
                json: true,
                username_field: "/username",
                password_field: "/password",
                failure_status: &[401],
                failure_redirect: None,
                attempt_field: None,
                username_aliases: &["/email"],
                match_subpaths: false,
            },
            // AuthController with submitLogin: a failed CustomerLoginForm
            // renders the page with its errors; a success redirects.
            // No attempt field: Tools::isSubmit('submitLogin') reads the
            // query string too.
            Self::Prestashop => form_again(Some("/login"), "email", "password", None),
            // LoginView: form_invalid() renders the form (200), form_valid()
            // redirects.
            Self::Django => form_again(Some("/accounts/login"), "username", "password", None),
            // login-actions/authenticate: a failure challenge renders the
            // login page (200), a success redirects to the client.
            // The flow's later steps (a one-time code, WebAuthn) post to
            // the same path without `password`.
            Self::Keycloak => form_again(None, "username", "password", Some("password")),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{BodyFormat, Login};

    fn login(toml: &str) -> Result<Login, String> {
        toml::from_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_preset_fills_what_the_table_leaves_out() {
        let l = login("preset = \"magento2\"").unwrap();
        assert_eq!(l.path, "/customer/account/loginPost");
        assert_eq!(l.format, BodyFormat::Form);
        assert_eq!(l.username_field, "login[username]");
        assert_eq!(l.password_field, "login[password]");
        assert!(l.failure_status.is_empty());
        assert_eq!(
            l.failure_redirect.as_deref(),
            Some("/customer/account/login")
        );
        let l = login("preset = \"shopware6_store_api\"").unwrap();
        assert_eq!(l.format, BodyFormat::Json);
        assert_eq!(l.username_field, "/username");
        assert_eq!(l.failure_status, [401]);
    }

    #[test]
    fn keys_the_operator_sets_win_over_the_preset() {
        let l = login(
            "preset = \"wordpress\"\npath = \"/blog/wp-login.php\"\n\
             failure_status = [200, 403]\nmax_body = \"4KiB\"",
        )
        .unwrap();
        assert_eq!(l.path, "/blog/wp-login.php");
        assert_eq!(l.failure_status, [200, 403]);
        assert_eq!(l.max_body.0, 4096);
        // The rest still comes from the preset.
        assert_eq!(l.username_field, "log");
        assert_eq!(l.password_field, "pwd");
        assert_eq!(l.format, BodyFormat::Form);
    }

    #[test]
    fn without_a_preset_the_defaults_hold() {
        let l = login("path = \"/login\"").unwrap();
        assert_eq!(l.format, BodyFormat::Auto);
        assert_eq!(l.username_field, "username");
        assert_eq!(l.failure_status, [401, 403]);
        assert!(l.failure_redirect.is_none());
        assert!(l.match_suffix);
    }

    #[test]
    fn a_table_without_a_path_says_why() {
        let e = login("preset = \"keycloak\"").unwrap_err();
        assert!(e.contains("path") && e.contains("realm"), "{e}");
        let e = login("username_field = \"email\"").unwrap_err();
        assert!(e.contains("missing field `path`"), "{e}");
        let l = login("preset = \"keycloak\"\npath = \"/realms/shop/login-actions/authenticate\"");
        assert_eq!(l.unwrap().username_field, "username");
    }

    #[test]
    fn an_unknown_preset_or_key_is_refused() {
        let e = login("preset = \"joomla\"").unwrap_err();
        assert!(
            e.contains("unknown variant") && e.contains("wordpress"),
            "{e}"
        );
        let e = login("preset = \"django\"\nusername_feld = \"email\"").unwrap_err();
        assert!(e.contains("username_feld"), "{e}");
    }
}
