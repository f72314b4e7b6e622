//! What each platform of a login preset really sends and answers: the login
//! request its own form (or API client) makes, with its field names, extra
//! fields and content type, and its answers to a right and a wrong password.
//! Taken from the platforms' source (docs/presets.md names the files); the
//! nonces, tokens and cookie values are made up.
//!
//! A scripted upstream plays the platform: it answers a login with the
//! recorded success when the request carries `x-script: success`, and with
//! the recorded failure otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

const FORM: &str = "application/x-www-form-urlencoded";

/// One platform's login, as recorded.
pub struct Platform {
    /// The `preset` value.
    pub preset: &'static str,
    /// `[[login]]` keys the preset cannot know (Keycloak's realm).
    pub extra: &'static str,
    /// Path and query the login form posts to.
    pub target: &'static str,
    pub content_type: &'static str,
    /// Headers besides the content type (the platform's cookies, keys).
    pub headers: &'static [(&'static str, &'static str)],
    /// The body, with `{user}` and `{password}` where the form puts them.
    pub body: &'static str,
    pub json: bool,
    pub success: Recorded,
    pub failure: Recorded,
    /// Another of the platform's forms that posts to the login's path and
    /// logs no one in: (path and query, body).
    pub other_form: Option<(&'static str, &'static str)>,
}

/// A recorded answer.
#[derive(Clone, Copy)]
pub struct Recorded {
    pub status: u16,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static str,
}

impl Platform {
    /// The body with these credentials, encoded the way the platform's form
    /// (or JSON client) encodes them.
    pub fn body_for(&self, user: &str, password: &str) -> String {
        let encode = |v: &str| match self.json {
            true => {
                let quoted = serde_json::to_string(v).unwrap();
                quoted[1..quoted.len() - 1].to_owned()
            }
            false => form_urlencoded::byte_serialize(v.as_bytes()).collect(),
        };
        self.body
            .replace("{user}", &encode(user))
            .replace("{password}", &encode(password))
    }
}

const WP_FAILED: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><title>Log In &lsaquo; Shop &#8212; WordPress</title></head>\
<body class=\"login no-js login-action-login wp-core-ui\"><div id=\"login\"><div id=\"login_error\" class=\"notice notice-error\">\
<p><strong>Error:</strong> The password you entered for this username is incorrect. <a href=\"https://shop.example/wp-login.php?action=lostpassword\">Lost your password?</a></p></div>\
<form name=\"loginform\" id=\"loginform\" action=\"https://shop.example/wp-login.php\" method=\"post\"><input type=\"text\" name=\"log\" id=\"user_login\"/>\
<input type=\"password\" name=\"pwd\" id=\"user_pass\"/><input type=\"submit\" name=\"wp-submit\" id=\"wp-submit\" value=\"Log In\"/></form></div></body></html>";

/// wp-login.php: the classic form.
pub const WORDPRESS: Platform = Platform {
    preset: "wordpress",
    extra: "",
    target: "/wp-login.php",
    content_type: FORM,
    headers: &[("cookie", "wordpress_test_cookie=WP%20Cookie%20check")],
    body: "log={user}&pwd={password}&rememberme=forever&wp-submit=Log+In\
           &redirect_to=https%3A%2F%2Fshop.example%2Fwp-admin%2F&testcookie=1",
    json: false,
    success: Recorded {
        status: 302,
        headers: &[
            ("location", "https://shop.example/wp-admin/"),
            ("set-cookie", "wordpress_sec_5c7d3b0e9f=a%7C1767225600%7Ctok%7Chmac; path=/wp-admin; secure; HttpOnly"),
            ("set-cookie", "wordpress_logged_in_5c7d3b0e9f=a%7C1767225600%7Ctok%7Chmac; path=/; secure; HttpOnly"),
        ],
        body: "",
    },
    failure: Recorded {
        status: 200,
        headers: &[("content-type", "text/html; charset=UTF-8")],
        body: WP_FAILED,
    },
    // wp-login.php?action=lostpassword
    other_form: Some((
        "/wp-login.php?action=lostpassword",
        "user_login=customer%40example.com&redirect_to=&wp-submit=Get+New+Password",
    )),
};

/// WooCommerce's My Account login form (templates/myaccount/form-login.php).
pub const WOOCOMMERCE: Platform = Platform {
    preset: "woocommerce",
    extra: "",
    target: "/my-account/",
    content_type: FORM,
    headers: &[],
    body: "username={user}&password={password}&rememberme=forever\
           &woocommerce-login-nonce=4f1e2d3c5b&_wp_http_referer=%2Fmy-account%2F&login=Log+in",
    json: false,
    success: Recorded {
        status: 302,
        headers: &[
            ("location", "https://shop.example/my-account/"),
            ("set-cookie", "wordpress_logged_in_5c7d3b0e9f=a%7C1767225600%7Ctok%7Chmac; path=/; secure; HttpOnly"),
        ],
        body: "",
    },
    failure: Recorded {
        status: 200,
        headers: &[("content-type", "text/html; charset=UTF-8")],
        body: "<div class=\"woocommerce\"><ul class=\"woocommerce-error\" role=\"alert\"><li>\
               <strong>Error:</strong> The password you entered for this username is incorrect.</li></ul>\
               <form class=\"woocommerce-form woocommerce-form-login login\" method=\"post\"></form></div>",
    },
    // The registration form beside the login form (generated username and
    // password: the WooCommerce defaults).
    other_form: Some((
        "/my-account/",
        "email=new%40example.com&woocommerce-register-nonce=9a8b7c6d5e\
         &_wp_http_referer=%2Fmy-account%2F&register=Register",
    )),
};

/// Magento 2's customer login (Customer/view/frontend/templates/form/login.phtml
/// posting to Customer/Controller/Account/LoginPost.php).
pub const MAGENTO2: Platform = Platform {
    preset: "magento2",
    extra: "",
    // The form's action when the login page was opened with a referer
    // (Customer\Model\Url::getLoginPostUrl()).
    target: "/customer/account/loginPost/referer/aHR0cHM6Ly9zaG9wLmV4YW1wbGUvY2hlY2tvdXQv/",
    content_type: FORM,
    headers: &[("cookie", "PHPSESSID=k3j2h1g0f9; form_key=Xk2cJ8tqH1yZ0aB3")],
    body: "form_key=Xk2cJ8tqH1yZ0aB3&login%5Busername%5D={user}&login%5Bpassword%5D={password}&send=",
    json: false,
    success: Recorded {
        status: 302,
        headers: &[
            ("location", "https://shop.example/customer/account/"),
            ("set-cookie", "PHPSESSID=n3wS3ss10n; path=/; secure; HttpOnly; SameSite=Lax"),
        ],
        body: "",
    },
    failure: Recorded {
        status: 302,
        headers: &[
            ("location", "https://shop.example/customer/account/login/"),
            ("set-cookie", "mage-messages=%5B%7B%22type%22%3A%22error%22%2C%22text%22%3A%22The%20account%20sign-in%20was%20incorrect%20or%20your%20account%20is%20disabled%20temporarily.%20Please%20wait%20and%20try%20again%20later.%22%7D%5D; path=/; SameSite=Strict"),
        ],
        body: "",
    },
    other_form: None,
};

/// Shopware 6's storefront login (Storefront/Controller/AuthController.php).
pub const SHOPWARE6: Platform = Platform {
    preset: "shopware6",
    extra: "",
    target: "/account/login",
    content_type: FORM,
    headers: &[("cookie", "session-=2b4c6d8e0f")],
    body: "redirectTo=frontend.account.home.page&redirectParameters=%5B%5D\
           &username={user}&password={password}",
    json: false,
    success: Recorded {
        status: 302,
        headers: &[("location", "/account")],
        body: "<!DOCTYPE html><html><head><meta http-equiv=\"refresh\" content=\"0;url='/account'\" /></head></html>",
    },
    failure: Recorded {
        status: 200,
        headers: &[("content-type", "text/html; charset=UTF-8")],
        body: "<div role=\"alert\" class=\"alert alert-danger\"><div class=\"alert-content-container\">\
               Could not find an account that matches the given credentials.</div></div>\
               <form class=\"login-form\" action=\"/account/login\" method=\"post\"></form>",
    },
    other_form: None,
};

/// Shopware 6's Store API (Checkout/Customer/SalesChannel/LoginRoute.php).
pub const SHOPWARE6_STORE_API: Platform = Platform {
    preset: "shopware6_store_api",
    extra: "",
    target: "/store-api/account/login",
    content_type: "application/json",
    headers: &[
        ("sw-access-key", "SWSCDLJZVKJSWKVLYVHJAEFXRQ"),
        ("accept", "application/json"),
    ],
    body: r#"{"username":"{user}","password":"{password}"}"#,
    json: true,
    success: Recorded {
        status: 200,
        headers: &[
            ("content-type", "application/json"),
            ("sw-context-token", "Zq8xK2mN4pR6tV8wY0aC2eG4iK6mO8qS"),
        ],
        body: r#"{"contextToken":"Zq8xK2mN4pR6tV8wY0aC2eG4iK6mO8qS","redirectUrl":null,"apiAlias":"array_struct"}"#,
    },
    failure: Recorded {
        status: 401,
        headers: &[("content-type", "application/json")],
        body: r#"{"errors":[{"status":"401","code":"CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS","title":"Unauthorized","detail":"Invalid username and\/or password."}]}"#,
    },
    other_form: None,
};

/// PrestaShop 1.7/8's login (controllers/front/AuthController.php with
/// classes/form/CustomerLoginForm.php).
pub const PRESTASHOP: Platform = Platform {
    preset: "prestashop",
    extra: "",
    target: "/login?back=my-account",
    content_type: FORM,
    headers: &[("cookie", "PrestaShop-4b2e=def502000a1b")],
    body: "back=my-account&email={user}&password={password}&submitLogin=1",
    json: false,
    success: Recorded {
        status: 302,
        headers: &[
            ("location", "https://shop.example/my-account"),
            ("set-cookie", "PrestaShop-4b2e=def50200ff9e; path=/; secure; HttpOnly; SameSite=Lax"),
        ],
        body: "",
    },
    failure: Recorded {
        status: 200,
        headers: &[("content-type", "text/html; charset=utf-8")],
        body: "<section class=\"login-form\"><div class=\"help-block\"><ul><li class=\"alert alert-danger\">\
               Authentication failed.</li></ul></div><form id=\"login-form\" action=\"https://shop.example/login?back=my-account\" method=\"post\"></form></section>",
    },
    other_form: None,
};

/// Django's LoginView (django/contrib/auth/views.py).
pub const DJANGO: Platform = Platform {
    preset: "django",
    extra: "",
    target: "/accounts/login/",
    content_type: FORM,
    headers: &[("cookie", "csrftoken=Jq5V2mB8xN4cR7tY1wE3uI6oP9aS0dF2")],
    body: "csrfmiddlewaretoken=h7G3kL9mQ2wE5rT8yU1iO4pA6sD0fJ3g&username={user}&password={password}&next=%2F",
    json: false,
    success: Recorded {
        status: 302,
        headers: &[
            ("location", "/"),
            ("set-cookie", "sessionid=q1w2e3r4t5y6u7i8o9p0; expires=Tue, 15 Dec 2026 12:00:00 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"),
        ],
        body: "",
    },
    failure: Recorded {
        status: 200,
        headers: &[("content-type", "text/html; charset=utf-8")],
        body: "<form method=\"post\"><ul class=\"errorlist nonfield\"><li>Please enter a correct username and password. \
               Note that both fields may be case-sensitive.</li></ul></form>",
    },
    other_form: None,
};

/// Keycloak's username/password form (login.ftl posting to
/// login-actions/authenticate).
pub const KEYCLOAK: Platform = Platform {
    preset: "keycloak",
    extra: "path = \"/realms/shop/login-actions/authenticate\"",
    target: "/realms/shop/login-actions/authenticate?session_code=nq4Kx1&execution=0b5a7e4c&client_id=shop-web&tab_id=fZ8yQ2",
    content_type: FORM,
    headers: &[("cookie", "AUTH_SESSION_ID=6f1c2e9a.keycloak-0; KC_RESTART=eyJhbGciOi")],
    body: "username={user}&password={password}&credentialId=",
    json: false,
    success: Recorded {
        status: 302,
        headers: &[
            ("location", "https://shop.example/callback?state=5d1e&session_state=8a2b&code=3c4d.8a2b.shop-web"),
            ("set-cookie", "KEYCLOAK_IDENTITY=eyJhbGciOi; Version=1; Path=/realms/shop/; SameSite=None; Secure; HttpOnly"),
            ("set-cookie", "KEYCLOAK_SESSION=shop/8a2b; Version=1; Path=/realms/shop/; SameSite=None; Secure"),
        ],
        body: "",
    },
    failure: Recorded {
        status: 200,
        headers: &[("content-type", "text/html;charset=utf-8")],
        body: "<div class=\"alert-error pf-c-alert pf-m-inline pf-m-danger\"><span class=\"pf-c-alert__title kc-feedback-text\">\
               Invalid username or password.</span></div><form id=\"kc-form-login\" method=\"post\"></form>",
    },
    // The next step of a flow with a one-time code (login-otp.ftl).
    other_form: Some((
        "/realms/shop/login-actions/authenticate?session_code=pX7r2A&execution=9c1f3b2d&client_id=shop-web&tab_id=fZ8yQ2",
        "otp=123456&login=Sign+In",
    )),
};

pub const ALL: [&Platform; 8] = [
    &WORDPRESS,
    &WOOCOMMERCE,
    &MAGENTO2,
    &SHOPWARE6,
    &SHOPWARE6_STORE_API,
    &PRESTASHOP,
    &DJANGO,
    &KEYCLOAK,
];

/// The platform, played back: counts the requests it gets.
pub struct ScriptedUpstream {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl ScriptedUpstream {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Starts `platform`'s scripted upstream on a free port; it runs until the
/// test ends.
pub async fn start_upstream(platform: &'static Platform) -> ScriptedUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        let http = auto::Builder::new(TokioExecutor::new());
        while let Ok((stream, _)) = listener.accept().await {
            let (http, counter) = (http.clone(), counter.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, Infallible>(answer(platform, req).await) }
                });
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    ScriptedUpstream { addr, requests }
}

async fn answer(platform: &Platform, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let success = req
        .headers()
        .get("x-script")
        .is_some_and(|v| v == "success");
    let _ = req.into_body().collect().await;
    let recorded = match success {
        true => platform.success,
        false => platform.failure,
    };
    let mut response = Response::builder().status(recorded.status);
    for (name, value) in recorded.headers {
        response = response.header(*name, *value);
    }
    response
        .body(Full::new(Bytes::from_static(recorded.body.as_bytes())))
        .unwrap()
}
