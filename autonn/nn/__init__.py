from .convolution import conv, convt  # noqa: F401  (Kernels I)
from .pooling import pool  # noqa: F401  (Kernels I)
from .activation import maxout, relu, sigmoid, softmax  # noqa: F401  (Blocks II)
from .normalization import bnorm, lrn, noffset, normalize, normalizelp, spnorm  # noqa: F401
from .losses import loss, softmaxloss  # noqa: F401  (Blocks II)
from .distance import pdist  # noqa: F401  (Blocks II)
from .noise import dropout  # noqa: F401  (Blocks II)
from .recurrent import lstm, lstm_params  # noqa: F401  (AutoNN's vl_nnlstm)
from .structure import concat, crop  # noqa: F401  (Blocks II)
from .roi import roipool  # noqa: F401  (Blocks II)
from .spatial_transformer import affinegrid, bilinearsampler  # noqa: F401  (Blocks II)

from ._arguments import takes_name as _takes_name  # noqa: E402

# Every block takes name= in a graph (nn.conv(x, size=..., name='scores')).
conv, convt, pool, maxout, relu, sigmoid, softmax = (_takes_name(f) for f in (
    conv, convt, pool, maxout, relu, sigmoid, softmax))
bnorm, lrn, noffset, normalize, normalizelp, spnorm = (_takes_name(f) for f in (
    bnorm, lrn, noffset, normalize, normalizelp, spnorm))
loss, softmaxloss, pdist, dropout, lstm, concat, crop, roipool, affinegrid, bilinearsampler = (
    _takes_name(f) for f in (loss, softmaxloss, pdist, dropout, lstm, concat, crop, roipool,
                             affinegrid, bilinearsampler))
