// The API's browsable docs (/api/v1/docs/): Swagger UI rendering /api/v1/openapi.json.
// A file rather than an inline script, for the Content-Security-Policy. The validator badge is
// off (it would send the description to validator.swagger.io).
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var node = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: node.dataset.openapiUrl,
    domNode: node,
    validatorUrl: null,
    deepLinking: false,
    persistAuthorization: false,
    tryItOutEnabled: false,
  });
});
