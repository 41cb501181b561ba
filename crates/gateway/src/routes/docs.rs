//! The OpenAPI document (`/openapi.json`) and a Swagger UI over it (`/docs`). The document is
//! generated from the handlers' `#[utoipa::path]` attributes and the very structs they parse and
//! answer with, so it cannot drift from the routes. The UI's assets are compiled in (the
//! `vendored` feature): nothing is fetched at build or run time.

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use super::{gozero, health, oauth2};
use crate::app::AppState;

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth gateway",
        description = "REST front of auth-svc. `/user/...` follows the go-zero tutorial (camelCase JSON, \
                       errors as {\"code\",\"msg\"}); `/signup`, `/token`, `/protected` follow the FastAPI \
                       tutorial (OAuth2 password flow, errors as {\"detail\"}). Every 401 carries \
                       `WWW-Authenticate: Bearer`; every response carries `x-request-id`."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = gozero::TAG, description = "go-zero `user-api`"),
        (name = oauth2::TAG, description = "FastAPI OAuth2 password flow"),
        (name = health::TAG, description = "Probes"),
    )
)]
pub struct ApiDoc;

/// `bearer` for the go-zero routes; `oauth2` (password flow at `/token`) for `/protected`, so
/// the Swagger UI's "Authorize" button can log in.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new("/token", Scopes::new()))])),
        );
    }
}

/// Serves the document and the UI.
pub fn router(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi).into()
}
