#!/usr/bin/env python3
"""tools/ref/make_gelu_coef.py: the coefficient table phi_coef of src/compute/lowp.c.

Phi (the standard normal CDF) as a piecewise polynomial: 16 intervals of width 1 over [-8, 8],
degree 5 in the local coordinate u in [-1/2, 1/2], by Chebyshev interpolation, rounded to f32.
Prints the C table and (on stderr) the maximum error on Phi and on GELU = x Phi(x).  Needs numpy and scipy (the reference
venv, e.g. /work/refenv/bin/python tools/ref/make_gelu_coef.py).
"""
import sys
import numpy as np
from scipy.special import ndtr
from numpy.polynomial import chebyshev as C, polynomial as P
DEG=5
NINT=16
coef=np.zeros((DEG+1,NINT))
maxerr=0
maxgelu=0
for k in range(NINT):
    fl=k-8  # floor(x)
    f=lambda u: ndtr(fl+0.5+u)
    # chebyshev interpolation on [-0.5,0.5]
    n=DEG+1
    nodes=np.cos(np.pi*(np.arange(n)+0.5)/n)*0.5
    c=np.polyfit(nodes, f(nodes), DEG)[::-1]  # ascending
    # refine: least squares on dense grid with minimax-ish weights (Chebyshev interp is close enough)
    uu=np.linspace(-0.5,0.5,2001)
    cf=np.float32(c).astype(np.float64)
    err=np.max(np.abs(P.polyval(uu,cf)-f(uu)))
    maxerr=max(maxerr,err)
    maxgelu=max(maxgelu,np.max(np.abs((fl+0.5+uu)*(P.polyval(uu,cf)-f(uu)))))
    coef[:,k]=np.float32(c)
print("max abs err Phi (f32 coeffs):", maxerr, "GELU:", maxgelu, file=sys.stderr)
o = sys.stdout
o.write("static const float phi_coef[%d][%d] = {\n"%(DEG+1,NINT))
for d in range(DEG+1):
    o.write("    {"+", ".join("%.9ef"%v for v in coef[d])+"},\n")
o.write("};\n")
