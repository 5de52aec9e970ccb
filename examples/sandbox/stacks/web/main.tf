# The public web tier. Objects live in the sandbox cloud ($SANDBOX_ROOT).

terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {}

resource "sandbox_autoscaling_group" "web" {
  name             = "web"
  min_size         = 3
  max_size         = 9
  desired_capacity = 3
  tags             = { team = "web" }
}

resource "sandbox_load_balancer" "web" {
  name         = "web"
  idle_timeout = 60
}

resource "sandbox_lb_listener" "http" {
  load_balancer_id = sandbox_load_balancer.web.id
  port             = 80
  protocol         = "HTTP"
  target_group     = sandbox_autoscaling_group.web.name
}
