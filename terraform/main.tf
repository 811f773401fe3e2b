locals {
  common_tags = merge(
    {
      "Project"                = "cajal"
      "ManagedBy"              = "terraform"
      "cajal.dev/cluster-name" = var.cluster_name
    },
    var.tags,
  )
}

data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  availability_zones = length(var.availability_zones) > 0 ? var.availability_zones : slice(sort(data.aws_availability_zones.available.names), 0, var.az_count)
}

module "network" {
  source = "./modules/network"

  name                 = var.cluster_name
  cluster_name         = var.cluster_name
  vpc_cidr             = var.vpc_cidr
  availability_zones   = local.availability_zones
  public_subnet_cidrs  = var.public_subnet_cidrs
  private_subnet_cidrs = var.private_subnet_cidrs
  single_nat_gateway   = var.single_nat_gateway
}

module "cluster" {
  source = "./modules/cluster"

  cluster_name              = var.cluster_name
  kubernetes_version        = var.kubernetes_version
  subnet_ids                = module.network.private_subnet_ids
  endpoint_public_access    = var.endpoint_public_access
  public_access_cidrs       = var.public_access_cidrs
  enabled_cluster_log_types = var.enabled_cluster_log_types
  log_retention_days        = var.cluster_log_retention_days
  enable_irsa               = var.enable_irsa
  oidc_thumbprints          = var.oidc_thumbprints
}

module "node_groups" {
  source = "./modules/node_groups"

  cluster_name       = module.cluster.cluster_name
  kubernetes_version = module.cluster.cluster_version
  subnet_ids         = module.network.private_subnet_ids

  cpu = {
    instance_types = var.cpu_instance_types
    ami_type       = var.cpu_ami_type
    capacity_type  = var.cpu_capacity_type
    disk_size      = var.cpu_disk_size
    min_size       = var.cpu_min_size
    desired_size   = var.cpu_desired_size
    max_size       = var.cpu_max_size
  }

  gpu_enabled = var.enable_gpu_node_group
  gpu = {
    instance_types = var.gpu_instance_types
    ami_type       = var.gpu_ami_type
    capacity_type  = var.gpu_capacity_type
    disk_size      = var.gpu_disk_size
    min_size       = var.gpu_min_size
    desired_size   = var.gpu_desired_size
    max_size       = var.gpu_max_size
  }
}
