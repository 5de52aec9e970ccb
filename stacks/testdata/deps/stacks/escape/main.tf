locals {
  a = file("../../../outside.json")
  b = file("/etc/hostname")
  c = fileset("/etc", "*")
  d = fileset(path.module, "../../../*")
}

module "far" {
  source = "../../../elsewhere"
}
