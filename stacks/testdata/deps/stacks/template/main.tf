locals {
  motd = templatefile("${path.module}/../../tpl/x.tpl", { name = "web" })
  x    = yamldecode(file("${path.root}/../../shared/x.json"))
  hash = core::filesha256("${path.cwd}/../../shared/policy.json")
}
