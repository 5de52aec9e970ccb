# The internal API, built from the shared service module.

terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {}

module "api" {
  source   = "../../modules/service"
  name     = "api"
  min_size = 2
  max_size = 6
}

output "dns_name" {
  value = module.api.dns_name
}
