# Production provider configuration: credentials come from the standard AWS
# chain (environment, shared config/SSO profile, instance/role metadata).
# Tests replace this block with an override file that points at a local
# emulator; no endpoints are configured here on purpose.
provider "aws" {
  region = var.region

  default_tags {
    tags = local.common_tags
  }
}
