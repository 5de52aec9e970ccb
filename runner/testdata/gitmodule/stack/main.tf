# The test puts the module's Git source in place of MODULE_SOURCE.
module "m" {
  source = "MODULE_SOURCE"
}

output "v" {
  value = module.m.v
}
