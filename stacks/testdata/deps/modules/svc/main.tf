module "lb" {
  source = "../lb"
}

locals {
  own    = file("${path.module}/own.json")
  shared = file("../../shared/x.json") # relative to the stack, where terraform runs
}
