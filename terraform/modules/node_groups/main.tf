data "aws_partition" "current" {}

locals {
  # Exactly the AWS-managed policies EKS worker nodes need.
  node_policies = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])

  # Scheduling contract with k8s/overlays/gpu (see terraform/README.md).
  node_pool_label_key = "cajal.dev/node-pool"
}

data "aws_iam_policy_document" "node_assume_role" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.cluster_name}-eks-node"
  description        = "EKS managed node group role of ${var.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.node_assume_role.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = local.node_policies

  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = var.cluster_name
  node_group_name = "${var.cluster_name}-cpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  version         = var.kubernetes_version

  instance_types = var.cpu.instance_types
  ami_type       = var.cpu.ami_type
  capacity_type  = var.cpu.capacity_type
  disk_size      = var.cpu.disk_size

  scaling_config {
    min_size     = var.cpu.min_size
    desired_size = var.cpu.desired_size
    max_size     = var.cpu.max_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = {
    (local.node_pool_label_key) = "cpu"
  }

  tags = merge(var.tags, { Name = "${var.cluster_name}-cpu" })

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_eks_node_group" "gpu" {
  count = var.gpu_enabled ? 1 : 0

  cluster_name    = var.cluster_name
  node_group_name = "${var.cluster_name}-gpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  version         = var.kubernetes_version

  instance_types = var.gpu.instance_types
  ami_type       = var.gpu.ami_type
  capacity_type  = var.gpu.capacity_type
  disk_size      = var.gpu.disk_size

  scaling_config {
    min_size     = var.gpu.min_size
    desired_size = var.gpu.desired_size
    max_size     = var.gpu.max_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = {
    (local.node_pool_label_key) = "gpu"
  }

  # Only pods that tolerate nvidia.com/gpu (Exists, NoSchedule) land here.
  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  tags = merge(var.tags, { Name = "${var.cluster_name}-gpu" })

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}
