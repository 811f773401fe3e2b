# ---------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------

variable "region" {
  description = "AWS region to deploy into, e.g. us-east-1."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as us-east-1 or eu-west-2."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster; also used as the prefix for the VPC, IAM roles and node groups."
  type        = string
  default     = "cajal"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,37}[A-Za-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 2-39 characters of letters, digits and hyphens, start with a letter and not end with a hyphen."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version (\"1.MINOR\"), e.g. 1.34 (docs/kubeflow.md has the version matrix)."
  type        = string
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.(2[89]|3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be an EKS minor version of the form 1.MINOR between 1.28 and 1.39, e.g. \"1.34\" (no patch level, no leading v)."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource (merged over Project/ManagedBy defaults)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.tags) : !startswith(lower(k), "aws:")])
    error_message = "tags must not use the reserved aws: prefix."
  }
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC, a /16 to /20 network address, e.g. 10.0.0.0/16."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition = (
      can(cidrhost(var.vpc_cidr, 0)) &&
      can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", var.vpc_cidr)) &&
      try(cidrsubnet(var.vpc_cidr, 0, 0) == var.vpc_cidr, false) &&
      try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    )
    error_message = "vpc_cidr must be a valid IPv4 network address in CIDR notation with a prefix between /16 and /20, e.g. 10.0.0.0/16."
  }
}

variable "availability_zones" {
  description = "Availability zones to use. Empty means the first az_count zones of the region (sorted)."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || length(var.availability_zones) >= 2
    error_message = "availability_zones must be empty or list at least two zones (EKS requires subnets in two AZs)."
  }
}

variable "az_count" {
  description = "Number of availability zones to spread subnets over when availability_zones is empty."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number between 2 and 6."
  }
}

variable "public_subnet_cidrs" {
  description = "CIDRs of the public subnets, one per AZ. Empty means derived from vpc_cidr (small /24-sized blocks at the top of the range)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_subnet_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", c))])
    error_message = "public_subnet_cidrs must contain only valid IPv4 CIDR blocks, e.g. 10.0.240.0/24."
  }
}

variable "private_subnet_cidrs" {
  description = "CIDRs of the private (node) subnets, one per AZ. Empty means derived from vpc_cidr (large blocks, the VPC CNI gives every pod a VPC IP)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", c))])
    error_message = "private_subnet_cidrs must contain only valid IPv4 CIDR blocks, e.g. 10.0.0.0/20."
  }
}

variable "single_nat_gateway" {
  description = "true: one shared NAT gateway (cheaper); false: one NAT gateway per AZ (zone-redundant egress)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# EKS control plane
# ---------------------------------------------------------------------------

variable "endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (restricted to public_access_cidrs). The private endpoint is always enabled."
  type        = bool
  default     = true
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint. Narrow this to your office/VPN ranges."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.public_access_cidrs) > 0 && alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", c))])
    error_message = "public_access_cidrs must be a non-empty list of valid IPv4 CIDR blocks, e.g. 203.0.113.0/24."
  }
}

variable "enabled_cluster_log_types" {
  description = "Control plane log types sent to CloudWatch Logs."
  type        = list(string)
  default     = ["api", "audit", "authenticator"]

  validation {
    condition     = alltrue([for t in var.enabled_cluster_log_types : contains(["api", "audit", "authenticator", "controllerManager", "scheduler"], t)])
    error_message = "enabled_cluster_log_types may only contain api, audit, authenticator, controllerManager and scheduler."
  }
}

variable "cluster_log_retention_days" {
  description = "Retention of the /aws/eks/<cluster>/cluster CloudWatch log group, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.cluster_log_retention_days)
    error_message = "cluster_log_retention_days must be a CloudWatch Logs retention value such as 7, 30, 90 or 365."
  }
}

variable "enable_irsa" {
  description = "Create the IAM OIDC provider for the cluster so Kubernetes service accounts can assume IAM roles (IRSA)."
  type        = bool
  default     = true
}

variable "oidc_thumbprints" {
  description = "SHA-1 thumbprints of the root CA of the EKS OIDC issuer. AWS no longer checks it for EKS issuers (it trusts its own CA library), but the API still stores one; the default is the Starfield root used by oidc.eks.*.amazonaws.com."
  type        = list(string)
  default     = ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]

  validation {
    condition     = length(var.oidc_thumbprints) >= 1 && length(var.oidc_thumbprints) <= 5 && alltrue([for t in var.oidc_thumbprints : can(regex("^[0-9a-fA-F]{40}$", t))])
    error_message = "oidc_thumbprints must hold 1-5 SHA-1 thumbprints of 40 hexadecimal characters."
  }
}

# ---------------------------------------------------------------------------
# CPU node group (cajald, Kubeflow controllers, Katib trials without GPUs)
# ---------------------------------------------------------------------------

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group."
  type        = list(string)
  default     = ["m6i.xlarge"]

  validation {
    condition     = length(var.cpu_instance_types) > 0 && alltrue([for t in var.cpu_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "cpu_instance_types must be a non-empty list of EC2 instance types such as m6i.xlarge."
  }
}

variable "cpu_ami_type" {
  description = "AMI type of the CPU node group."
  type        = string
  default     = "AL2023_x86_64_STANDARD"

  validation {
    condition     = contains(["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "AL2_x86_64", "AL2_ARM_64", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64"], var.cpu_ami_type)
    error_message = "cpu_ami_type must be one of AL2023_x86_64_STANDARD, AL2023_ARM_64_STANDARD, AL2_x86_64, AL2_ARM_64, BOTTLEROCKET_x86_64, BOTTLEROCKET_ARM_64."
  }
}

variable "cpu_capacity_type" {
  description = "ON_DEMAND or SPOT for the CPU node group."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.cpu_capacity_type)
    error_message = "cpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "cpu_disk_size" {
  description = "Root volume size of CPU nodes, GiB."
  type        = number
  default     = 50

  validation {
    condition     = var.cpu_disk_size >= 20 && var.cpu_disk_size <= 16384
    error_message = "cpu_disk_size must be between 20 and 16384 GiB."
  }
}

variable "cpu_min_size" {
  description = "Minimum number of CPU nodes."
  type        = number
  default     = 2

  validation {
    condition     = var.cpu_min_size >= 1 && floor(var.cpu_min_size) == var.cpu_min_size
    error_message = "cpu_min_size must be a whole number of at least 1 (cajald and Kubeflow need a CPU node)."
  }
}

variable "cpu_desired_size" {
  description = "Initial number of CPU nodes (later changes by an autoscaler are ignored)."
  type        = number
  default     = 2

  validation {
    condition     = var.cpu_desired_size >= var.cpu_min_size && var.cpu_desired_size <= var.cpu_max_size
    error_message = "cpu_desired_size must lie between cpu_min_size and cpu_max_size."
  }
}

variable "cpu_max_size" {
  description = "Maximum number of CPU nodes."
  type        = number
  default     = 6

  validation {
    condition     = var.cpu_max_size >= 1 && var.cpu_max_size >= var.cpu_min_size && floor(var.cpu_max_size) == var.cpu_max_size
    error_message = "cpu_max_size must be a whole number, at least 1 and at least cpu_min_size."
  }
}

# ---------------------------------------------------------------------------
# GPU node group (optional; tainted nvidia.com/gpu=true:NoSchedule)
# ---------------------------------------------------------------------------

variable "enable_gpu_node_group" {
  description = "Create the GPU node group (label cajal.dev/node-pool=gpu, taint nvidia.com/gpu=true:NoSchedule)."
  type        = bool
  default     = false
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group."
  type        = list(string)
  default     = ["g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "gpu_instance_types must be a non-empty list of EC2 instance types such as g5.xlarge."
  }
}

variable "gpu_ami_type" {
  description = "AMI type of the GPU node group; must be an NVIDIA-enabled EKS AMI type."
  type        = string
  default     = "AL2023_x86_64_NVIDIA"

  validation {
    condition     = contains(["AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "AL2_x86_64_GPU", "BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA"], var.gpu_ami_type)
    error_message = "gpu_ami_type must be an NVIDIA EKS AMI type: AL2023_x86_64_NVIDIA, AL2023_ARM_64_NVIDIA, AL2_x86_64_GPU, BOTTLEROCKET_x86_64_NVIDIA or BOTTLEROCKET_ARM_64_NVIDIA."
  }
}

variable "gpu_capacity_type" {
  description = "ON_DEMAND or SPOT for the GPU node group."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_capacity_type)
    error_message = "gpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "gpu_disk_size" {
  description = "Root volume size of GPU nodes, GiB (CUDA images are large)."
  type        = number
  default     = 100

  validation {
    condition     = var.gpu_disk_size >= 20 && var.gpu_disk_size <= 16384
    error_message = "gpu_disk_size must be between 20 and 16384 GiB."
  }
}

variable "gpu_min_size" {
  description = "Minimum number of GPU nodes (0 lets an autoscaler scale the pool to zero)."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu_min_size >= 0 && floor(var.gpu_min_size) == var.gpu_min_size
    error_message = "gpu_min_size must be a whole number of at least 0."
  }
}

variable "gpu_desired_size" {
  description = "Initial number of GPU nodes (later changes by an autoscaler are ignored)."
  type        = number
  default     = 1

  validation {
    condition     = var.gpu_desired_size >= var.gpu_min_size && var.gpu_desired_size <= var.gpu_max_size
    error_message = "gpu_desired_size must lie between gpu_min_size and gpu_max_size."
  }
}

variable "gpu_max_size" {
  description = "Maximum number of GPU nodes; must be at least 1 (EKS rejects a node group with max size 0)."
  type        = number
  default     = 2

  validation {
    condition     = var.gpu_max_size >= 1 && var.gpu_max_size >= var.gpu_min_size && floor(var.gpu_max_size) == var.gpu_max_size
    error_message = "gpu_max_size must be a whole number of at least 1 and at least gpu_min_size; to run without GPUs set enable_gpu_node_group = false."
  }
}

# ---------------------------------------------------------------------------
# Add-ons
# ---------------------------------------------------------------------------

variable "enable_ebs_csi_driver" {
  description = "Create the IRSA role for the Amazon EBS CSI driver and (with manage_eks_addons) install the aws-ebs-csi-driver add-on, needed for EBS-backed PersistentVolumeClaims."
  type        = bool
  default     = true

  validation {
    condition     = !var.enable_ebs_csi_driver || var.enable_irsa
    error_message = "enable_ebs_csi_driver needs enable_irsa = true (the driver authenticates through the cluster's IAM OIDC provider)."
  }
}

variable "manage_eks_addons" {
  description = "Install EKS managed add-ons (aws-ebs-csi-driver) with Terraform. Set false to manage them elsewhere, or where the EKS add-on API is unavailable (the moto-based tests)."
  type        = bool
  default     = true
}
