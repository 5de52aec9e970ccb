locals {
  docs = { for f in fileset("${path.module}/../../files", "*.json") : f => file("${path.module}/../../files/${f}") }
}
