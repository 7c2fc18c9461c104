# Run-time settings shared by every pretraining config (override with --cfg-options).
train = dict(
    batch_size=256,             # total over all processes; each gets batch_size / WORLD_SIZE
    seed=0,
    amp='none',                 # 'none' | 'bf16' | 'fp16' (fp16 uses a GradScaler)
    checkpoint_interval=10,     # keep epoch_NNNN.pth every N epochs (latest.pth is written every epoch)
    log_interval=10,            # TensorBoard scalars every N iterations
    tensorboard=True,
    max_iters_per_epoch=None,   # cap iterations per epoch (smoke tests)
    sync_bn=False,              # SyncBatchNorm across GPUs (SimCLR/BYOL papers use it)
    find_unused_parameters=False,
)
