# A module kept in a private Git repository; the tests move its branch to v2.
output "v" {
  value = "one"
}
